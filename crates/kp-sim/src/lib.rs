//! Deterministic simulation of the full-consensus network, driving the node's own core.
//!
//! One seed drives everything. Each simulated node is `kp_core::Core` — the code the node runs:
//! consensus engine, rules engine, store (on `kp-store`'s in-memory backend, [`SimBackend`]),
//! pending pool with its tentative block, governance approvals, forwarding to upcoming
//! proposers, catch-up and consensus-record persistence — on virtual time. The simulator plays
//! the part of the node's runtime and network: it carries out the core's effects over a
//! simulated network carrying the real wire bytes (latency, jitter, loss, duplication, delay
//! spikes, partitions that heal), crashes nodes (a crash drops the core; what it wrote is on
//! its disk, what it had not sent is lost) and restarts them from their disk, injects disk
//! failures, plays clients that submit, retry and read, and Byzantine nodes. After each run the
//! checks of [`Report`] say whether agreement, validity, durability, liveness and
//! accountability held, and that no honest node's core failed; a run's trace digest makes
//! determinism checkable. Nothing here reads a clock or an unseeded random source.

#![allow(clippy::cast_possible_truncation)] // Node indices and counts are small.

mod byzantine;
pub mod scenario;

/// A simulated node's disk: kept across the node's crashes (every write the store makes is
/// synced), with injected write failures.
pub type SimBackend = kp_store::FaultyMemBackend;
pub use scenario::{Behaviour, Crash, NetworkFaults, Partition, Scenario, WithholdPoint};

use kp_consensus::wire;
use kp_consensus::{Config, Evidence, Message, apply_committed};
use kp_core::{ApprovalBytes, Core, CoreError, Effect, Submission};
use kp_crypto::SecretKey;
use kp_domain::{EventId, EventPayload, GovernanceAction, Hash32, ParticipantId, Role, Timestamp};
use kp_testkit::{TestNet, act, at, certificate, receipt, seal};
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use sha2::{Digest, Sha256};
use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet, BinaryHeap};
use std::rc::Rc;
use std::time::{Duration, Instant};

/// How long a node waits for a catch-up answer before asking another peer.
const SYNC_RETRY_MS: u64 = 1_000;
/// How long a client waits before submitting again what a node could not take (it was down,
/// its pool was full, its disk failed).
const CLIENT_RETRY_MS: u64 = 500;
/// How long a node whose core failed stays down before its operator's supervisor restarts it.
const RESTART_AFTER_EXIT_MS: u64 = 5_000;
/// How often a flooding Byzantine node sends its `NewRound`s.
const FLOOD_EVERY_MS: u64 = 200;
/// Hard cap on processed simulation steps: a run never loops without end.
const MAX_STEPS: u64 = 40_000_000;

/// The engine configuration of simulated nodes.
pub fn engine_config() -> Config {
    Config { round_timeout_base_ms: 1_000, round_timeout_cap_ms: 30_000, idle_block_ms: 2_000 }
}

/// Two-letter participant codes for `n` simulated participants (AA, AB, …).
pub fn participant_codes(n: usize) -> Vec<String> {
    (0..n).map(|i| format!("{}{}", char::from(b'A' + (i / 26) as u8), char::from(b'A' + (i % 26) as u8))).collect()
}

/// What travels between simulated nodes. The bytes are shared: a broadcast is encoded once and
/// every receiver gets the same bytes, as from one send buffer. Every message carries its
/// sender's committed height, as every answer on the node's network does.
#[derive(Debug, Clone)]
enum Payload {
    Consensus(Rc<[u8]>),
    Events(Rc<Vec<Vec<u8>>>),
    Approval(Rc<ApprovalBytes>),
    SyncRequest(u64),
    SyncResponse(Rc<[u8]>),
}

impl Payload {
    fn len(&self) -> usize {
        match self {
            Payload::Consensus(b) | Payload::SyncResponse(b) => b.len(),
            Payload::Events(e) => e.iter().map(Vec::len).sum(),
            Payload::Approval(a) => a.act.len() + a.key.len() + a.signature.len(),
            Payload::SyncRequest(_) => 8,
        }
    }
}

/// A client's read, as the API makes it (`GetGovernance`, `ListCertificates`, `GetCustody`).
#[derive(Debug, Clone, Copy)]
enum Read {
    Governance,
    Certificates,
    Custody,
}

#[derive(Debug)]
enum Event {
    Deliver {
        to: usize,
        from: usize,
        height: u64,
        payload: Payload,
    },
    /// The node's next deadline (round timer, request for events, forwarding).
    Wake {
        node: usize,
        generation: u64,
    },
    Crash {
        node: usize,
        mid_step: bool,
    },
    Restart {
        node: usize,
    },
    /// A client submits events to a node, in order, in one batch.
    Submit {
        node: usize,
        envelopes: Vec<Vec<u8>>,
    },
    /// An authority approves a governance act at its participant's node.
    Approve {
        node: usize,
        approval: ApprovalBytes,
    },
    Read {
        node: usize,
        read: Read,
    },
    /// The next `n` writes into a node's pending pool fail.
    FailWrites {
        node: usize,
        n: u32,
    },
    /// A flooding Byzantine node sends its next `NewRound`s (see [`Behaviour::FloodNewRound`]).
    Flood {
        node: usize,
    },
    PartitionEnd(usize),
    FaultsEnd,
}

#[derive(Debug)]
struct Scheduled {
    at: u64,
    seq: u64,
    event: Event,
}
impl PartialEq for Scheduled {
    fn eq(&self, o: &Self) -> bool {
        (self.at, self.seq) == (o.at, o.seq)
    }
}
impl Eq for Scheduled {}
impl PartialOrd for Scheduled {
    fn partial_cmp(&self, o: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for Scheduled {
    fn cmp(&self, o: &Self) -> std::cmp::Ordering {
        (self.at, self.seq).cmp(&(o.at, o.seq))
    }
}

#[derive(Debug)]
struct Node {
    id: ParticipantId,
    key_seed: [u8; 32],
    skew_ms: i64,
    /// A clock that drifts: this many ms per hour of virtual time, from the start.
    drift_ms_per_hour: i64,
    /// A clock that jumps: by this many ms at this virtual time (from the start).
    jump: Option<(u64, i64)>,
    /// The node's disk: kept across crashes.
    disk: SimBackend,
    /// The running node's core (`None` while it is down).
    core: Option<Core<SimBackend>>,
    wake_generation: u64,
    wake_at: Option<u64>,
    /// A crash armed to strike after this many effects of the node's next step.
    crash_mid: Option<usize>,
    sync_until: u64,
    /// Every block this node ever reported committed: (height, hash), across restarts.
    commits: Vec<(u64, Hash32)>,
    /// Every voter this node's core ever named as holding up a round.
    missing_seen: BTreeSet<ParticipantId>,
    /// (sender index, why, excused): messages this node's core refused as its sender's fault.
    refusals: Vec<(usize, String, bool)>,
    /// Errors that would have stopped the node's process (the runtime exits on them).
    exits: Vec<String>,
}

impl Node {
    fn up(&self) -> bool {
        self.core.is_some()
    }

    fn height(&self) -> u64 {
        self.core.as_ref().map_or(0, Core::height)
    }

    fn pool(&self) -> usize {
        self.core.as_ref().map_or(0, Core::pool_len)
    }

    /// One line on where the node stands, for failure reports.
    fn describe(&self) -> String {
        let (h, r, missing) =
            self.core.as_ref().map_or((0, 0, vec![]), |c| (c.height(), c.round(), c.missing().to_vec()));
        let refused = self.refusals.last().map(|r| r.1.clone()).unwrap_or_default();
        format!(
            "{} up={} at {h}/{r} pool {} missing {missing:?} last refusal {refused}",
            self.id,
            self.up(),
            self.pool()
        )
    }
}

/// Counters of one run.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Stats {
    /// Deliveries scheduled (a broadcast counts once per receiver), of every kind.
    pub messages: u64,
    pub bytes: u64,
    pub consensus_messages: u64,
    pub consensus_bytes: u64,
    pub dropped: u64,
    pub decode_errors: u64,
    pub crashes: u64,
    pub syncs_applied: u64,
    /// Client submissions the node could not take (down, pool full, disk failure) and retried.
    pub client_retries: u64,
    /// Submissions refused as the pool being full.
    pub pool_full: u64,
    /// Writes the simulated disks failed.
    pub failed_writes: u64,
    /// Reads made by clients.
    pub reads: u64,
    /// Wall-clock time spent in the nodes' cores, all nodes.
    pub cpu: Duration,
    pub steps: u64,
    /// In the withholding scenario: virtual ms from the suspension act being submitted, with
    /// every approval, until every node had it committed.
    pub suspension_ms: u64,
}

/// The outcome of one run: what was committed and which checks failed.
#[derive(Debug, Clone)]
pub struct Report {
    pub seed: u64,
    pub nodes: usize,
    pub kind: &'static str,
    /// Lowest and highest committed height over the nodes at the end.
    pub heights: (u64, u64),
    pub events_committed: u64,
    pub virtual_ms: u64,
    pub stats: Stats,
    pub digest: Hash32,
    /// Each failed check, with what shows it.
    pub violations: Vec<String>,
}

impl Report {
    pub fn ok(&self) -> bool {
        self.violations.is_empty()
    }

    /// The command that reruns this run.
    pub fn rerun(&self) -> String {
        let kind = match self.kind {
            "faults" => String::new(),
            other => format!(" --kind {other}"),
        };
        format!("scripts/sim.sh --seed {} --nodes {}{kind}", self.seed, self.nodes)
    }
}

/// One simulated network.
#[derive(Debug)]
pub struct Sim {
    pub scenario: Scenario,
    net: TestNet,
    start: u64,
    now: u64,
    rng: StdRng,
    nodes: Vec<Node>,
    index: BTreeMap<ParticipantId, usize>,
    queue: BinaryHeap<Reverse<Scheduled>>,
    seq: u64,
    held: Vec<(usize, usize, usize, u64, Payload)>,
    faults_on: bool,
    /// Byzantine behaviour per node, while `faults_on` (or forced on).
    byzantine: BTreeMap<usize, Behaviour>,
    byzantine_forced: BTreeSet<usize>,
    /// Commit certificates kept back by commit-hiding nodes.
    hidden: BTreeMap<usize, kp_consensus::block::Certificate>,
    /// Events clients submitted: each must end up committed.
    submitted: BTreeSet<EventId>,
    /// A node's core failing is expected (an injected disk failure on that node).
    exits_expected: BTreeSet<usize>,
    digest: Sha256,
    /// Print every effect (KP_SIM_TRACE set).
    trace: bool,
    /// Each height's first commit by any node: (virtual time, block time).
    first_commit: BTreeMap<u64, (u64, Timestamp)>,
    pub stats: Stats,
    violations: Vec<String>,
}

impl Sim {
    pub fn new(scenario: Scenario) -> Sim {
        let codes = participant_codes(scenario.nodes);
        let code_refs: Vec<&str> = codes.iter().map(String::as_str).collect();
        let net = TestNet::new(&code_refs, scenario.seed);
        let start = at(1, 0).0;
        let mut rng = StdRng::seed_from_u64(scenario.seed);
        let mut nodes = Vec::new();
        let mut index = BTreeMap::new();
        for (i, p) in net.genesis.participants.iter().enumerate() {
            let skew = scenario.clock_skew_ms as i64;
            index.insert(p.id, i);
            nodes.push(Node {
                id: p.id,
                key_seed: net.keys[&p.id].node.to_seed(),
                skew_ms: if skew > 0 { rng.random_range(-skew..=skew) } else { 0 },
                drift_ms_per_hour: 0,
                jump: None,
                disk: SimBackend::default(),
                core: None,
                wake_generation: 0,
                wake_at: None,
                crash_mid: None,
                sync_until: 0,
                commits: vec![],
                missing_seen: BTreeSet::new(),
                refusals: vec![],
                exits: vec![],
            });
        }
        let byzantine = scenario.byzantine.iter().copied().collect();
        let mut sim = Sim {
            scenario,
            net,
            start,
            now: start,
            rng,
            nodes,
            index,
            queue: BinaryHeap::new(),
            seq: 0,
            held: vec![],
            faults_on: true,
            byzantine,
            byzantine_forced: BTreeSet::new(),
            hidden: BTreeMap::new(),
            submitted: BTreeSet::new(),
            exits_expected: BTreeSet::new(),
            digest: Sha256::new(),
            trace: std::env::var_os("KP_SIM_TRACE").is_some(),
            first_commit: BTreeMap::new(),
            stats: Stats::default(),
            violations: vec![],
        };
        for i in 0..sim.nodes.len() {
            sim.boot(i);
        }
        sim
    }

    pub fn net(&self) -> &TestNet {
        &self.net
    }

    fn schedule(&mut self, delay_ms: u64, event: Event) {
        self.seq += 1;
        self.queue.push(Reverse(Scheduled { at: self.now + delay_ms, seq: self.seq, event }));
    }

    fn schedule_at(&mut self, at_ms: u64, event: Event) {
        let delay = (self.start + at_ms).saturating_sub(self.now);
        self.schedule(delay, event);
    }

    /// Node `i`'s wall clock (skewed, drifting, jumping as its scenario says).
    fn clock(&self, i: usize) -> Timestamp {
        Timestamp(self.now.saturating_add_signed(self.skew(i)))
    }

    /// How far node `i`'s clock is off now.
    fn skew(&self, i: usize) -> i64 {
        let n = &self.nodes[i];
        let elapsed = i64::try_from(self.now - self.start).unwrap_or(i64::MAX);
        let drift = n.drift_ms_per_hour.saturating_mul(elapsed) / 3_600_000;
        let jump = n.jump.filter(|(at, _)| self.now - self.start >= *at).map_or(0, |(_, by)| by);
        n.skew_ms + drift + jump
    }

    fn key(&self, i: usize) -> SecretKey {
        SecretKey::from_seed(&self.nodes[i].key_seed)
    }

    fn violation(&mut self, what: String) {
        if self.violations.len() < 20 {
            self.violations.push(what);
        }
    }

    /// Starts (or restarts) node `i` from its disk, as `kpledger node` does: the store opened
    /// and checked, the engine restored from its records, the pool reloaded; its peers see it
    /// connect (they pass it their events and approvals again), and it sees them.
    fn boot(&mut self, i: usize) {
        let now = self.clock(i);
        let key = self.key(i);
        let disk = self.nodes[i].disk.clone();
        let started = Instant::now();
        let opened =
            Core::open_with(disk, &self.net.genesis, key, engine_config(), self.scenario.max_block_events, now, false);
        self.stats.cpu += started.elapsed();
        let (mut core, effects) = match opened {
            Ok(x) => x,
            Err(e) => {
                let id = self.nodes[i].id;
                self.violation(format!("restart: {id}'s node does not start from its disk: {e}"));
                return;
            }
        };
        if let Some(limit) = self.scenario.pool_limit {
            core.set_pending_limit(limit);
        }
        let node = &mut self.nodes[i];
        node.core = Some(core);
        node.crash_mid = None;
        node.sync_until = 0;
        self.carry_out(i, effects);
        let me = self.nodes[i].id;
        for j in 0..self.nodes.len() {
            if j == i || !self.nodes[j].up() {
                continue;
            }
            let peer = self.nodes[j].id;
            let approvals = self.with_core(j, |c, _| {
                c.peer_connected(me);
                Ok((c.open_approvals(), Vec::new()))
            });
            for a in approvals.into_iter().flatten() {
                self.send(j, i, Payload::Approval(Rc::new(a)));
            }
            let mine = self.with_core(i, |c, _| {
                c.peer_connected(peer);
                Ok((c.open_approvals(), Vec::new()))
            });
            for a in mine.into_iter().flatten() {
                self.send(i, j, Payload::Approval(Rc::new(a)));
            }
        }
    }

    /// The node's process stops: its core (memory) is gone; its disk stays.
    fn crash(&mut self, i: usize) {
        let node = &mut self.nodes[i];
        if node.core.take().is_none() {
            return;
        }
        node.wake_generation += 1;
        node.wake_at = None;
        node.crash_mid = None;
        self.stats.crashes += 1;
        self.digest.update(b"crash");
        self.digest.update((i as u64).to_be_bytes());
    }

    /// Calls node `i`'s core, as the runtime does for one event, then its `tick` (the runtime
    /// ticks after every event), and carries out the effects of both. A core error is what
    /// stops the node's process: the node is down, and its supervisor restarts it a little later.
    fn with_core<R>(
        &mut self,
        i: usize,
        call: impl FnOnce(&mut Core<SimBackend>, Timestamp) -> Result<(R, Vec<Effect>), CoreError>,
    ) -> Option<R> {
        let now = self.clock(i);
        let core = self.nodes[i].core.as_mut()?;
        let started = Instant::now();
        let result = call(core, now).and_then(|(r, mut effects)| {
            effects.extend(core.tick(now)?);
            Ok((r, effects))
        });
        self.stats.cpu += started.elapsed();
        match result {
            Ok((r, effects)) => {
                self.carry_out(i, effects);
                self.after_step(i);
                Some(r)
            }
            Err(e) => {
                self.exit(i, e.to_string());
                None
            }
        }
    }

    fn exit(&mut self, i: usize, why: String) {
        let id = self.nodes[i].id;
        if !self.exits_expected.contains(&i) && !self.byzantine.contains_key(&i) {
            self.violation(format!("exit: {id}'s node stopped on a core error: {why}"));
        }
        self.nodes[i].exits.push(why);
        self.crash(i);
        self.schedule(RESTART_AFTER_EXIT_MS, Event::Restart { node: i });
    }

    /// What the runtime's loop does between events: note who holds up the round, and sleep
    /// until the core's next deadline.
    fn after_step(&mut self, i: usize) {
        let skew = self.skew(i);
        let node = &mut self.nodes[i];
        let Some(core) = node.core.as_ref() else { return };
        node.missing_seen.extend(core.missing().iter().copied());
        let Some(deadline) = core.next_deadline() else { return };
        let at = deadline.0.saturating_add_signed(-skew).max(self.now);
        if node.wake_at.is_none_or(|w| at < w || w < self.now) {
            node.wake_generation += 1;
            node.wake_at = Some(at);
            let generation = node.wake_generation;
            self.schedule(at - self.now, Event::Wake { node: i, generation });
        }
    }

    /// Carries out a core's effects as the node's network does.
    fn carry_out(&mut self, i: usize, effects: Vec<Effect>) {
        let crash_after = self.nodes[i].crash_mid;
        for (k, e) in effects.into_iter().enumerate() {
            if crash_after == Some(k) || !self.nodes[i].up() {
                return self.crash(i);
            }
            if self.trace {
                let brief = format!("{e:?}");
                println!("t={} {} {}", self.now - self.start, self.nodes[i].id, &brief[..brief.len().min(220)]);
            }
            match e {
                Effect::Send(to, message) => {
                    if let Some(&to) = self.index.get(&to) {
                        self.transmit(i, Some(to), message);
                    }
                }
                Effect::Broadcast(message) => self.transmit(i, None, message),
                Effect::Forward(to, envelopes) => {
                    if let Some(&to) = self.index.get(&to) {
                        self.send(i, to, Payload::Events(Rc::new(envelopes)));
                    }
                }
                Effect::Behind(_) => self.request_sync(i),
                Effect::Misbehaved(who, why) => {
                    let from = self.index.get(&who).copied().unwrap_or(usize::MAX);
                    self.nodes[i].refusals.push((from, why, false));
                }
                Effect::GossipApproval(a) => {
                    let a = Rc::new(a);
                    for to in self.voters_of(i) {
                        self.send(i, to, Payload::Approval(Rc::clone(&a)));
                    }
                }
                Effect::Committed(height) => self.record_commit(i, height),
            }
        }
        if crash_after.is_some() {
            self.crash(i);
        }
    }

    /// The nodes of the voters of node `i`'s next height, but `i` (a broadcast's receivers).
    fn voters_of(&self, i: usize) -> Vec<usize> {
        let Some(core) = self.nodes[i].core.as_ref() else { return vec![] };
        core.voters().iter().filter_map(|(id, _)| self.index.get(id).copied()).filter(|to| *to != i).collect()
    }

    /// A committed block: noted with its hash (from the node's store, where it already is).
    fn record_commit(&mut self, i: usize, height: u64) {
        let Some(core) = self.nodes[i].core.as_ref() else { return };
        match core.store().header(height) {
            Ok(Some(header)) => {
                let hash = kp_consensus::block::block_hash(&header.encode());
                self.digest.update(height.to_be_bytes());
                self.digest.update(hash.0);
                self.nodes[i].commits.push((height, hash));
                self.first_commit.entry(height).or_insert((self.now, header.time));
            }
            other => {
                let id = self.nodes[i].id;
                self.violation(format!(
                    "durability: {id} reported height {height} committed, its store says {other:?}"
                ));
            }
        }
    }

    fn request_sync(&mut self, i: usize) {
        if self.nodes[i].sync_until > self.now || self.nodes.len() < 2 {
            return;
        }
        self.nodes[i].sync_until = self.now + SYNC_RETRY_MS;
        let mut peer = self.rng.random_range(0..self.nodes.len() - 1);
        if peer >= i {
            peer += 1;
        }
        let from = self.nodes[i].height() + 1;
        self.send(i, peer, Payload::SyncRequest(from));
    }

    fn on_sync_request(&mut self, i: usize, from: usize, height: u64) {
        // A withholding node serves no catch-up either: its blocks would carry what it withholds
        // (a commit certificate with its precommit, gathered from the others' reports).
        if height > self.nodes[i].height() || matches!(self.behaviour(i), Some(Behaviour::WithholdAt(_))) {
            return;
        }
        if let Some(bytes) = self.with_core(i, |c, _| Ok((c.serve_blocks(height)?, Vec::new()))) {
            self.send(i, from, Payload::SyncResponse(bytes.into()));
        }
    }

    fn on_sync_response(&mut self, i: usize, from: usize, claimed: u64, bytes: &[u8]) {
        self.nodes[i].sync_until = 0;
        let blocks = match wire::decode_blocks(bytes) {
            Ok(b) => b,
            Err(e) => {
                self.stats.decode_errors += 1;
                self.nodes[i].refusals.push((from, format!("catch-up batch: {e}"), false));
                return;
            }
        };
        let Some(applied) = self.with_core(i, |c, now| c.apply_blocks(blocks, now)) else { return };
        if let Some(why) = applied.refused {
            self.nodes[i].refusals.push((from, format!("catch-up block: {why}"), false));
        }
        self.stats.syncs_applied += applied.applied as u64;
        if applied.applied > 0 && claimed > self.nodes[i].height() {
            self.request_sync(i);
        }
    }

    /// Node `i`'s Byzantine behaviour now, if any.
    fn behaviour(&self, i: usize) -> Option<Behaviour> {
        self.byzantine.get(&i).copied().filter(|_| self.faults_on || self.byzantine_forced.contains(&i))
    }

    /// Sends a consensus message from node `i` (to one node, or to every voter's node), through
    /// the node's Byzantine behaviour if it has one now.
    fn transmit(&mut self, i: usize, to: Option<usize>, message: Message) {
        let sends = match self.behaviour(i) {
            Some(b) => byzantine::rewrite(self, i, b, to, message),
            None => vec![(to, wire::encode_message(&message))],
        };
        self.send_all(i, sends);
    }

    fn send_all(&mut self, i: usize, sends: byzantine::Sends) {
        for (to, bytes) in sends {
            self.digest.update(kp_crypto::sha256(&bytes).0);
            let bytes: Rc<[u8]> = bytes.into();
            match to {
                Some(to) => self.send(i, to, Payload::Consensus(bytes)),
                None => {
                    for to in self.voters_of(i) {
                        self.send(i, to, Payload::Consensus(Rc::clone(&bytes)));
                    }
                }
            }
        }
    }

    fn cut(&self, a: usize, b: usize) -> Option<(usize, bool)> {
        if !self.faults_on {
            return None;
        }
        let t = self.now - self.start;
        self.scenario.partitions.iter().enumerate().find_map(|(k, p)| {
            let active = p.start_ms <= t && t < p.end_ms;
            (active && p.side.contains(&a) != p.side.contains(&b)).then_some((k, p.hold))
        })
    }

    fn send(&mut self, from: usize, to: usize, payload: Payload) {
        self.stats.messages += 1;
        self.stats.bytes += payload.len() as u64;
        if matches!(payload, Payload::Consensus(_)) {
            self.stats.consensus_messages += 1;
            self.stats.consensus_bytes += payload.len() as u64;
        }
        let height = self.nodes[from].height();
        if let Some((k, hold)) = self.cut(from, to) {
            if hold {
                self.held.push((k, to, from, height, payload));
            } else {
                self.stats.dropped += 1;
            }
            return;
        }
        let net = self.scenario.net;
        let faulty = self.faults_on;
        if faulty && self.rng.random_range(0..1000) < net.loss_permille {
            self.stats.dropped += 1;
            return;
        }
        let copies = if faulty && self.rng.random_range(0..1000) < net.duplicate_permille { 2 } else { 1 };
        for _ in 0..copies {
            let mut delay = self.rng.random_range(net.latency_ms.0..=net.latency_ms.1);
            if faulty && net.spike_ms > 0 && self.rng.random_range(0..1000) < net.spike_permille {
                delay += self.rng.random_range(0..=net.spike_ms);
            }
            self.schedule(delay, Event::Deliver { to, from, height, payload: payload.clone() });
        }
    }

    fn deliver(&mut self, to: usize, from: usize, height: u64, payload: Payload) {
        if !self.nodes[to].up() {
            return;
        }
        // A peer two blocks ahead: fetch what this node lacks (the network does so on the height
        // every answer carries).
        if height >= self.nodes[to].height() + 2 {
            self.request_sync(to);
        }
        let sender = self.nodes[from].id;
        match payload {
            Payload::Consensus(bytes) => match wire::decode_message(&bytes) {
                Ok(message) => {
                    if self.behaviour(to) == Some(Behaviour::HideCommit) {
                        let sends = byzantine::observe(self, to, &message);
                        self.send_all(to, sends);
                    }
                    self.with_core(to, |c, now| Ok(((), c.on_message(sender, message, now)?)));
                }
                Err(e) => {
                    self.stats.decode_errors += 1;
                    self.nodes[to].refusals.push((from, format!("undecodable message: {e}"), false));
                }
            },
            Payload::Events(envelopes) => {
                let received = self.with_core(to, |c, now| c.receive_events(envelopes.to_vec(), now));
                if let Some(why) = received.and_then(|r| r.first_bad) {
                    self.nodes[to].refusals.push((from, why, false));
                }
            }
            Payload::Approval(a) => {
                let outcome = self.with_core(to, |c, _| c.approve((*a).clone(), false));
                if let Some(Err(e @ (kp_core::ApprovalError::Malformed(_) | kp_core::ApprovalError::BadSignature(_)))) =
                    outcome
                {
                    self.nodes[to].refusals.push((from, e.to_string(), false));
                }
            }
            Payload::SyncRequest(h) => self.on_sync_request(to, from, h),
            Payload::SyncResponse(bytes) => self.on_sync_response(to, from, height, &bytes),
        }
        // Every request is answered with the receiver's height: a sender two blocks behind
        // fetches what it lacks (a node no voter sends to any more, one suspended, learns so).
        if self.nodes[from].up() && self.nodes[to].height() >= self.nodes[from].height() + 2 {
            self.request_sync(from);
        }
    }

    /// A client's batch at node `i`: what the node takes is its to commit; what it could not
    /// take (down, pool full, disk failure) is submitted again a little later. An event the
    /// rules refuse is a failure of the run: the workload is valid.
    fn submit(&mut self, i: usize, envelopes: Vec<Vec<u8>>) {
        let now = self.clock(i);
        let Some(core) = self.nodes[i].core.as_mut() else {
            self.stats.client_retries += 1;
            self.schedule(CLIENT_RETRY_MS, Event::Submit { node: i, envelopes });
            return;
        };
        let started = Instant::now();
        let applied = (core.pool_block_applied(), core.metrics().pool_reapplied.get());
        let answer = core.submit_batch(envelopes.clone(), now);
        let after = (core.pool_block_applied(), core.metrics().pool_reapplied.get());
        self.stats.cpu += started.elapsed();
        let (answers, effects) = match answer {
            Ok(x) => x,
            Err(e) => {
                // The runtime answers the clients of a group that failed with the error, and
                // goes on; they submit again.
                self.stats.client_retries += 1;
                if !self.exits_expected.contains(&i) {
                    let id = self.nodes[i].id;
                    self.violation(format!("submission: {id}'s node failed a group: {e}"));
                }
                self.schedule(CLIENT_RETRY_MS, Event::Submit { node: i, envelopes });
                self.after_step(i);
                return;
            }
        };
        let pool_full = |a: &Submission| matches!(a, Submission::Rejected(_, kp_core::RejectKind::PoolFull, _));
        if answers.iter().all(pool_full) && applied != after {
            let id = self.nodes[i].id;
            self.violation(format!(
                "pool: a submission {id} refused for a full pool touched the pool's tentative block \
                 (applied, re-applications) {applied:?} -> {after:?}"
            ));
        }
        self.carry_out(i, effects);
        self.after_step(i);
        let mut again = Vec::new();
        for (envelope, answer) in envelopes.into_iter().zip(answers) {
            match answer {
                Submission::Added(id) | Submission::Duplicate(id, _) => {
                    self.submitted.insert(id);
                }
                Submission::Rejected(_, kp_core::RejectKind::PoolFull, _) => {
                    self.stats.pool_full += 1;
                    again.push(envelope);
                }
                Submission::Rejected(id, kind, why) => {
                    let node = self.nodes[i].id;
                    self.violation(format!("submission: {node} refused a valid event {id} ({kind:?}): {why}"));
                }
            }
        }
        if !again.is_empty() {
            self.stats.client_retries += 1;
            self.schedule(CLIENT_RETRY_MS, Event::Submit { node: i, envelopes: again });
        }
    }

    /// A client's read: it must not undo the pool's tentative block (which would cost the
    /// whole pool again at the next submission, under the core's lock).
    fn read(&mut self, i: usize, read: Read) {
        let k = self.rng.random_range(0..self.nodes.len());
        let participant = self.nodes[k].id;
        let Some(core) = self.nodes[i].core.as_mut() else { return };
        self.stats.reads += 1;
        let applied = core.pool_block_applied();
        let outcome = match read {
            Read::Governance => Ok(core.drafts(None).len()),
            // As the API serves it: from a snapshot of the committed state, which must agree
            // with the store at the head it was taken at.
            Read::Certificates => core.store().snapshot().and_then(|snapshot| {
                let page = |r: kp_store::StateReader<'_>| {
                    r.certificates_of(
                        participant,
                        kp_store::TradeRole::Exporter,
                        Timestamp(0),
                        Timestamp(u64::MAX),
                        None,
                        50,
                    )
                };
                let (seen, now) = (page(snapshot.reader())?, page(core.store().reader())?);
                if seen != now {
                    return Err(kp_store::StoreError::Integrity {
                        height: snapshot.head().height,
                        reason: "a snapshot's page differs from the store's at the same head".into(),
                    });
                }
                Ok(seen.len())
            }),
            Read::Custody => {
                let number = kp_domain::CertificateNumber::new(&format!("{participant}-W0"))
                    .unwrap_or_else(|e| unreachable(&e.to_string()));
                core.store().custody(&number).map(|c| c.len())
            }
        };
        let undone = core.pool_block_applied() != applied;
        let id = self.nodes[i].id;
        if let Err(e) = outcome {
            self.violation(format!("read: {read:?} at {id} failed: {e}"));
        }
        if undone {
            self.violation(format!("read: {read:?} at {id} undid the pool's tentative block"));
        }
    }

    /// Processes scheduled events up to `until` (absolute virtual time) or until `done` holds.
    fn run_until(&mut self, until: u64, done: &dyn Fn(&Sim) -> bool) -> bool {
        loop {
            if done(self) {
                return true;
            }
            let Some(Reverse(next)) = self.queue.peek() else { return false };
            if next.at > until || self.stats.steps >= MAX_STEPS {
                self.now = self.now.max(until);
                return done(self);
            }
            let Some(Reverse(s)) = self.queue.pop() else { return false };
            self.now = self.now.max(s.at);
            self.stats.steps += 1;
            self.process(s.event);
        }
    }

    fn process(&mut self, event: Event) {
        match event {
            Event::Deliver { to, from, height, payload } => self.deliver(to, from, height, payload),
            Event::Wake { node, generation } => {
                if self.nodes[node].up() && self.nodes[node].wake_generation == generation {
                    self.nodes[node].wake_at = None;
                    self.with_core(node, |_, _| Ok(((), Vec::new())));
                }
            }
            Event::Crash { node, mid_step } => {
                if mid_step && self.nodes[node].up() {
                    let k = self.rng.random_range(0..4);
                    self.nodes[node].crash_mid = Some(k);
                } else {
                    self.crash(node);
                }
            }
            Event::Restart { node } => {
                if self.nodes[node].up() && self.nodes[node].crash_mid.is_some() {
                    self.crash(node);
                }
                if !self.nodes[node].up() {
                    self.boot(node);
                }
            }
            Event::Submit { node, envelopes } => self.submit(node, envelopes),
            Event::Approve { node, approval } => {
                if self.with_core(node, |c, _| c.approve(approval.clone(), true)).is_none() {
                    self.schedule(CLIENT_RETRY_MS, Event::Approve { node, approval });
                }
            }
            Event::Read { node, read } => self.read(node, read),
            Event::Flood { node } => {
                if self.nodes[node].up() && self.behaviour(node) == Some(Behaviour::FloodNewRound) {
                    let sends = byzantine::flood(self, node);
                    self.send_all(node, sends);
                    self.schedule(FLOOD_EVERY_MS, Event::Flood { node });
                }
            }
            Event::FailWrites { node, n } => {
                self.exits_expected.insert(node);
                self.nodes[node].disk.fail_pool_writes(n);
            }
            Event::PartitionEnd(k) => {
                let held: Vec<_> = self.held.iter().filter(|h| h.0 == k).cloned().collect();
                self.held.retain(|h| h.0 != k);
                for (_, to, from, height, payload) in held {
                    let delay = self.rng.random_range(1..=50);
                    self.schedule(delay, Event::Deliver { to, from, height, payload });
                }
            }
            Event::FaultsEnd => {
                self.faults_on = false;
                for k in 0..self.scenario.partitions.len() {
                    self.process(Event::PartitionEnd(k));
                }
                for i in 0..self.nodes.len() {
                    if self.nodes[i].crash_mid.is_some() {
                        self.crash(i);
                    }
                    if !self.nodes[i].up() {
                        self.boot(i);
                    }
                }
            }
        }
    }

    /// The custody workload: for each certificate, issue, seal and receipt (submitted together,
    /// in order, in one batch), between participants `codes[k]` and `codes[k + 1]`.
    fn workload(&self, certificates: usize, codes: &[String], tag: &str) -> Vec<Vec<Vec<u8>>> {
        let net = &self.net;
        (0..certificates)
            .map(|k| {
                let from = &codes[k % codes.len()];
                let to = &codes[(k + 1) % codes.len()];
                let c = certificate(&format!("{from}-{tag}{k}"), from, to, at(1, 0));
                let number = c.number.to_string();
                vec![
                    net.envelope_with(net.key(from, Role::Exporting), &EventPayload::CertificateIssued(c.clone())),
                    net.envelope_with(
                        net.key(from, Role::Exporting),
                        &EventPayload::ShipmentSealed(seal(&number, at(1, 0))),
                    ),
                    net.envelope_with(
                        net.key(to, Role::Importing),
                        &EventPayload::ReceiptConfirmed(receipt(&c, at(1, 0))),
                    ),
                ]
            })
            .collect()
    }

    /// Schedules `batches` of the workload at `spacing` ms apart from `at_ms`, each to the node of
    /// its certificate's exporter (`codes` as given to [`Sim::workload`]).
    fn submit_workload(&mut self, batches: Vec<Vec<Vec<u8>>>, codes: &[String], at_ms: u64, spacing: u64) {
        for (k, batch) in batches.into_iter().enumerate() {
            let node = self.node_of(&codes[k % codes.len()]);
            self.schedule_at(at_ms + spacing * k as u64, Event::Submit { node, envelopes: batch });
        }
    }

    fn node_of(&self, code: &str) -> usize {
        self.nodes.iter().position(|n| n.id.as_str() == code).unwrap_or_else(|| unreachable(code))
    }

    fn heights(&self) -> (u64, u64) {
        let hs = self.nodes.iter().map(Node::height);
        (hs.clone().min().unwrap_or(0), hs.max().unwrap_or(0))
    }

    /// Every node is up, and its pool empty (committed events leave it).
    fn pools_empty(&self) -> bool {
        self.nodes.iter().all(|n| n.up() && n.pool() == 0)
    }

    fn longest(&self) -> usize {
        (0..self.nodes.len()).max_by_key(|i| self.nodes[*i].height()).unwrap_or(0)
    }

    /// Agreement (one block per height over every commit any node ever reported), validity (the
    /// longest stored chain replays from genesis through the edge, the rules and every
    /// certificate check), durability (every block a node reported committed is in its store,
    /// across crashes), that every event a client was told was taken is committed, and
    /// accountability (evidence and refusals only name Byzantine nodes).
    fn check(&mut self) {
        let mut by_height: BTreeMap<u64, (Hash32, usize)> = BTreeMap::new();
        let mut found = vec![];
        for (i, n) in self.nodes.iter().enumerate() {
            for (h, hash) in &n.commits {
                let first = *by_height.entry(*h).or_insert((*hash, i));
                if first.0 != *hash {
                    found.push(format!(
                        "agreement: height {h}: {} committed {} but {} committed {}",
                        self.nodes[first.1].id,
                        first.0.short(),
                        n.id,
                        hash.short()
                    ));
                }
            }
            if let Some(core) = &n.core {
                for (h, hash) in &n.commits {
                    let stored =
                        core.store().header(*h).ok().flatten().map(|x| kp_consensus::block::block_hash(&x.encode()));
                    if stored != Some(*hash) {
                        found.push(format!(
                            "durability: {} reported {h} committed as {}, stores {stored:?}",
                            n.id,
                            hash.short()
                        ));
                        break;
                    }
                }
            }
        }
        // Validity: replay the longest stored chain on a fresh ledger.
        let longest = self.longest();
        if let Some(core) = &self.nodes[longest].core {
            let mut app = kp_chain::LedgerApp::new(&self.net.genesis).unwrap_or_else(|e| unreachable(&e.to_string()));
            let chain_id = self.net.genesis.chain_id.clone();
            for h in 1..=core.height() {
                match core.store().block(h) {
                    Ok(Some(b)) => {
                        if let Err(e) = apply_committed(
                            &chain_id,
                            self.net.genesis.params.signature_rule,
                            &mut app,
                            &b.block,
                            &b.certificate,
                        ) {
                            found.push(format!("validity: block {h} does not replay: {e}"));
                            break;
                        }
                    }
                    other => {
                        found.push(format!("validity: block {h} is not in the longest store: {other:?}"));
                        break;
                    }
                }
            }
            let lost: Vec<String> = self
                .submitted
                .iter()
                .filter(|id| !matches!(core.store().position(id), Ok(Some(_))))
                .take(3)
                .map(ToString::to_string)
                .collect();
            if !lost.is_empty() {
                found.push(format!("liveness: events a node took were never committed (first: {})", lost.join(", ")));
            }
        }
        // Accountability.
        for n in &self.nodes {
            if let Some(core) = &n.core {
                for h in 1..=core.height() + 1 {
                    for e in core.store().evidence(h).unwrap_or_default() {
                        let accused = match &e {
                            Evidence::DoubleProposal { first, .. } => first.proposer,
                            Evidence::DoubleVote { first, .. } => first.voter,
                        };
                        let idx = self.index.get(&accused).copied().unwrap_or(usize::MAX);
                        if !self.byzantine.contains_key(&idx) {
                            found.push(format!("accountability: {} holds evidence against honest {accused}", n.id));
                        }
                    }
                }
            }
            for (from, reason, excused) in &n.refusals {
                if !excused && !self.byzantine.contains_key(from) {
                    let sender = self.nodes.get(*from).map_or_else(|| "?".to_owned(), |s| s.id.to_string());
                    found.push(format!("accountability: {} refused honest {sender}: {reason}", n.id));
                }
            }
        }
        for f in found {
            self.violation(f);
        }
    }

    fn report(mut self, kind: &'static str) -> Report {
        self.check();
        self.stats.failed_writes = self.nodes.iter().map(|n| u64::from(n.disk.failed_writes())).sum();
        let events_committed =
            self.nodes.iter().filter_map(|n| n.core.as_ref().map(|c| c.store().head().events)).max().unwrap_or(0);
        let digest = Hash32(self.digest.clone().finalize().into());
        Report {
            seed: self.scenario.seed,
            nodes: self.scenario.nodes,
            kind,
            heights: self.heights(),
            events_committed,
            virtual_ms: self.now - self.start,
            stats: self.stats.clone(),
            digest,
            violations: self.violations,
        }
    }

    /// Liveness once every fault has ended: within `bound_ms`, every node `heights` blocks past
    /// the highest height reached, with every pool empty.
    fn expect_liveness(&mut self, heights: u64, bound_ms: u64) {
        let (_, top) = self.heights();
        let target = top + heights;
        let deadline = self.now + bound_ms;
        if !self.run_until(deadline, &|s| s.heights().0 >= target && s.pools_empty()) {
            let state: Vec<String> = self.nodes.iter().map(Node::describe).collect();
            self.violation(format!(
                "liveness: {bound_ms} ms after the faults ended, not every node reached height {target} with an \
                 empty pool: {}",
                state.join("; ")
            ));
        }
    }
}

/// An internal invariant of the simulator itself failed: the run cannot mean anything.
fn unreachable(what: &str) -> ! {
    // Only the simulator's own fixtures reach this (a test genesis that does not load).
    #[allow(clippy::panic)]
    {
        panic!("simulator invariant: {what}")
    }
}

/// Runs a fault scenario: faults during `faults_end_ms`, then every fault stops and the chain
/// must advance `liveness_heights` and commit every submitted event within the bound.
pub fn run(scenario: Scenario) -> Report {
    let mut sim = Sim::new(scenario);
    let sc = sim.scenario.clone();
    let codes = participant_codes(sc.nodes);
    let batches = sim.workload(sc.certificates, &codes, "W");
    let spacing = sc.faults_end_ms / (batches.len() as u64 + 1);
    sim.submit_workload(batches, &codes, 0, spacing);
    for (k, p) in sc.partitions.iter().enumerate() {
        sim.schedule_at(p.end_ms, Event::PartitionEnd(k));
    }
    for c in &sc.crashes {
        sim.schedule_at(c.at_ms, Event::Crash { node: c.node, mid_step: c.mid_step });
        sim.schedule_at(c.restart_ms, Event::Restart { node: c.node });
    }
    sim.schedule_at(sc.faults_end_ms, Event::FaultsEnd);
    let fault_end = sim.start + sc.faults_end_ms;
    sim.run_until(fault_end, &|_| false);
    sim.expect_liveness(sc.liveness_heights, sc.liveness_bound_ms);
    sim.report("faults")
}

/// An authority's approval of `act` (exporting authority of `code`), as the CLI signs it.
fn approval(net: &TestNet, code: &str, act: &kp_domain::GovernanceAct) -> ApprovalBytes {
    let bytes = kp_proto::encode_act(act);
    let a = kp_proto::Approval::sign(net.key(code, Role::Exporting), net.chain_id(), &bytes);
    ApprovalBytes { act: bytes, key: a.key.0.to_vec(), signature: a.signature.0.to_vec() }
}

/// Governance as the CLI does it: every approver's authority approves at its own node (the
/// approvals travel between the nodes); once the proposer's node shows no approval missing,
/// the proposer submits the act with them all. Returns whether the act was submitted.
fn govern(sim: &mut Sim, proposer: &str, approvers: &[String], act: &kp_domain::GovernanceAct, bound_ms: u64) -> bool {
    for code in approvers {
        let node = sim.node_of(code);
        let approval = approval(&sim.net, code, act);
        sim.schedule(0, Event::Approve { node, approval });
    }
    let at = sim.node_of(proposer);
    let reference = act.reference.to_string();
    let complete = move |s: &Sim| {
        s.nodes[at].core.as_ref().is_some_and(|c| {
            c.drafts(Some(&reference)).first().is_some_and(|d| d.missing.is_empty() && d.refused.is_none())
        })
    };
    if !sim.run_until(sim.now + bound_ms, &complete) {
        let state = sim.nodes[at]
            .core
            .as_ref()
            .map(|c| format!("{:?}", c.drafts(None).iter().map(|d| &d.missing).collect::<Vec<_>>()));
        sim.violation(format!(
            "governance: {} never showed every approval of {} ({state:?})",
            sim.nodes[at].id, act.reference
        ));
        return false;
    }
    let envelope = sim.net.governance_envelope(proposer, act, approvers);
    sim.schedule(0, Event::Submit { node: at, envelopes: vec![envelope] });
    true
}

/// The consensus-minus-one path end to end: one participant withholds every vote and holds the
/// chain; the others suspend it with an act approved by all of them and continue without it;
/// it is readmitted, catches up and votes again.
pub fn run_governance(seed: u64, nodes: usize) -> Report {
    let mut sc = Scenario::calm(seed, nodes);
    let mut rng = StdRng::seed_from_u64(seed ^ 0x676f_7665_726e);
    let x = rng.random_range(0..nodes);
    sc.byzantine = vec![(x, Behaviour::Withhold)];
    sc.net.loss_permille = 5;
    let mut sim = Sim::new(sc);
    sim.byzantine_forced.insert(x);
    sim.faults_on = false;
    let codes = participant_codes(nodes);
    let xid = sim.nodes[x].id;
    let xcode = xid.to_string();
    let others: Vec<String> = codes.iter().filter(|c| **c != xcode).cloned().collect();
    let step_bound = 240_000;

    // The withholding participant holds the chain: nothing commits, and it is named.
    let batches = sim.workload(2, &others, "A");
    sim.submit_workload(batches, &others, sim.now - sim.start, 0);
    let halted = !sim.run_until(sim.now + 15_000, &|s| s.heights().1 >= 1);
    if !halted {
        sim.violation("governance: a block committed without the withholding voter".into());
    }
    let named = (0..nodes).filter(|i| *i != x).all(|i| sim.nodes[i].missing_seen.contains(&xid));
    if !named {
        sim.violation(format!("governance: not every node named {xid} as missing"));
    }

    // Suspension, approved by every other participant: committed without X.
    let proposer = others[0].clone();
    let suspend = act("KP/2026/SUSPEND", GovernanceAction::Suspend { participant: xid });
    if !govern(&mut sim, &proposer, &others, &suspend, step_bound) {
        return sim.report("governance");
    }
    let suspended = |s: &Sim| {
        // The committed state's voters (a suspension executed but not committed does not count).
        s.nodes.iter().all(|n| n.core.as_ref().is_some_and(|c| !c.voters().iter().any(|(id, _)| *id == xid)))
    };
    if !sim.run_until(sim.now + step_bound, &suspended) {
        let state: Vec<String> = sim.nodes.iter().map(Node::describe).collect();
        sim.violation(format!("governance: {xid} was not suspended on every node: {}", state.join("; ")));
        return sim.report("governance");
    }
    let honest = (x + 1) % nodes;
    let signed_without_x = sim.nodes[honest].core.as_ref().is_some_and(|c| {
        (1..=c.height()).any(|h| {
            c.store()
                .block(h)
                .ok()
                .flatten()
                .is_some_and(|b| b.block.events().len() == 1 && !b.certificate.signed_by(xid))
        })
    });
    if !signed_without_x {
        sim.violation("governance: no block was committed without the suspended voter's signature".into());
    }
    // The others continue without X.
    let before = sim.heights().0;
    let batches = sim.workload(3, &others, "B");
    sim.submit_workload(batches, &others, sim.now - sim.start, 0);
    if !sim.run_until(sim.now + step_bound, &|s| s.heights().0 >= before + 2 && s.pools_empty()) {
        sim.violation(format!("governance: the chain did not continue without {xid} ({:?})", sim.heights()));
    }

    // X comes back to honest behaviour and is readmitted by every voter.
    sim.byzantine_forced.clear();
    sim.byzantine.clear();
    let readmit = act("KP/2026/READMIT", GovernanceAction::Readmit { participant: xid });
    if !govern(&mut sim, &proposer, &others, &readmit, step_bound) {
        return sim.report("governance");
    }
    let active =
        |s: &Sim| s.nodes.iter().all(|n| n.core.as_ref().is_some_and(|c| c.voters().iter().any(|(id, _)| *id == xid)));
    if !sim.run_until(sim.now + step_bound, &active) {
        sim.violation(format!("governance: {xid} was not readmitted on every node ({:?})", sim.heights()));
        return sim.report("governance");
    }
    // It votes again: a later block carries its signature, trading with it included.
    let readmitted_at = sim.heights().0;
    let batches = sim.workload(2, &codes, "C");
    sim.submit_workload(batches, &codes, sim.now - sim.start, 0);
    let votes_again = move |s: &Sim| {
        s.pools_empty()
            && s.nodes.iter().all(|n| {
                n.core.as_ref().is_some_and(|c| {
                    c.height() > readmitted_at
                        && c.store()
                            .block(c.height())
                            .ok()
                            .flatten()
                            .is_some_and(|b| b.certificate.signatures.iter().any(|s| s.voter == xid))
                })
            })
    };
    if !sim.run_until(sim.now + step_bound, &votes_again) {
        sim.violation(format!("governance: readmitted {xid} does not vote again ({:?})", sim.heights()));
    }
    sim.report("governance")
}

/// One voter is down for `down_ms` (36 hours of virtual time by default: thousands of rounds at
/// the capped round timeout) while clients go on submitting to the others; the others must stay
/// up and keep voting, and once it is back it catches up and the chain resumes.
pub fn run_offline(seed: u64, nodes: usize, down_ms: u64) -> Report {
    let mut sc = Scenario::calm(seed, nodes);
    sc.net.loss_permille = 5;
    let mut rng = StdRng::seed_from_u64(seed ^ 0x6f66_666c_696e);
    let x = rng.random_range(0..nodes);
    let mut sim = Sim::new(sc);
    sim.faults_on = true;
    let codes = participant_codes(nodes);
    let others: Vec<String> = codes.iter().filter(|c| **c != sim.nodes[x].id.as_str()).cloned().collect();
    // Trade goes on before, during and after.
    let batches = sim.workload(sim.scenario.certificates, &others, "O");
    let spacing = down_ms / (batches.len() as u64 + 1);
    sim.submit_workload(batches, &others, 0, spacing);
    let crash_at = rng.random_range(1_000..=10_000);
    sim.schedule_at(crash_at, Event::Crash { node: x, mid_step: rng.random_bool(0.5) });
    sim.schedule_at(crash_at + down_ms, Event::Restart { node: x });
    sim.schedule_at(crash_at + down_ms, Event::FaultsEnd);
    let back = sim.start + crash_at + down_ms;
    sim.run_until(back, &|_| false);
    let rounds = (0..nodes).filter(|i| *i != x).filter_map(|i| sim.nodes[i].core.as_ref().map(Core::round)).min();
    if rounds.is_none_or(|r| r < 100) && down_ms >= 3_600_000 {
        sim.violation(format!("offline: the others ran only {rounds:?} rounds while {} was away", sim.nodes[x].id));
    }
    sim.expect_liveness(3, 600_000);
    sim.report("offline")
}

/// One Byzantine voter floods every node with `NewRound`s for an hour of virtual time: rounds far
/// ahead, and locks whose certificates do not verify. No honest node may fail, every honest node
/// must strike the flooder for its bad locks, and the chain must resume once it stops.
pub fn run_flood(seed: u64, nodes: usize) -> Report {
    let mut sc = Scenario::calm(seed, nodes);
    let mut rng = StdRng::seed_from_u64(seed ^ 0x0066_6c6f_6f64);
    let b = rng.random_range(0..nodes);
    sc.byzantine = vec![(b, Behaviour::FloodNewRound)];
    sc.faults_end_ms = 3_600_000;
    let mut sim = Sim::new(sc);
    let codes = participant_codes(nodes);
    let batches = sim.workload(sim.scenario.certificates, &codes, "F");
    sim.submit_workload(batches, &codes, 0, 60_000);
    sim.schedule_at(rng.random_range(0..5_000), Event::Flood { node: b });
    sim.schedule_at(sim.scenario.faults_end_ms, Event::FaultsEnd);
    let end = sim.start + sim.scenario.faults_end_ms;
    sim.run_until(end, &|_| false);
    let bid = sim.nodes[b].id;
    for i in (0..nodes).filter(|i| *i != b) {
        let struck = sim.nodes[i].refusals.iter().any(|(from, why, _)| *from == b && why.contains("reported lock"));
        if !struck {
            let id = sim.nodes[i].id;
            sim.violation(format!("flood: {id} never counted {bid}'s bad locks against it"));
        }
    }
    sim.expect_liveness(3, 600_000);
    sim.report("flood")
}

/// Clients fill every node's pool to its cap and go on submitting (what is refused as the pool
/// being full is submitted again later), with reads interleaved. A submission refused for a full
/// pool must not touch the pool's tentative block; no read may undo it; consensus goes on during
/// the flood and everything taken commits after it.
pub fn run_pool_flood(seed: u64, nodes: usize) -> Report {
    let mut sc = Scenario::calm(seed, nodes);
    sc.pool_limit = Some(15);
    sc.faults_end_ms = 60_000;
    let mut sim = Sim::new(sc);
    let codes = participant_codes(nodes);
    let certificates = 150 * nodes;
    let batches = sim.workload(certificates, &codes, "P");
    sim.submit_workload(batches, &codes, 0, 40 / nodes as u64);
    let mut rng = StdRng::seed_from_u64(seed ^ 0x706f_6f6c);
    for k in 0..3_000u64 {
        let node = rng.random_range(0..nodes);
        let read = [Read::Governance, Read::Certificates, Read::Custody][rng.random_range(0..3)];
        sim.schedule_at(k * 20, Event::Read { node, read });
    }
    let half = sim.start + 30_000;
    sim.run_until(half, &|_| false);
    let during = sim.heights().0;
    sim.run_until(sim.start + sim.scenario.faults_end_ms, &|_| false);
    if sim.heights().0 <= during {
        sim.violation(format!("pool flood: no block committed during the second half of the flood ({during})"));
    }
    if sim.stats.pool_full == 0 {
        sim.violation("pool flood: no submission ever met a full pool".into());
    }
    sim.faults_on = false;
    sim.expect_liveness(2, 600_000);
    sim.report("pool-flood")
}

/// A node's disk fails while it keeps submission groups (the next few writes into its pool
/// fail): the clients of those groups are told, nothing of them stays behind in the pool's
/// tentative block, the node keeps voting, and the clients' retries are taken and committed.
pub fn run_disk_failure(seed: u64, nodes: usize) -> Report {
    let mut sc = Scenario::calm(seed, nodes);
    sc.faults_end_ms = 20_000;
    let mut rng = StdRng::seed_from_u64(seed ^ 0x6469_736b);
    let k = rng.random_range(0..nodes);
    let mut sim = Sim::new(sc);
    let codes = participant_codes(nodes);
    // This node's exporter ships to the others, through the node whose disk fails.
    let batches: Vec<_> = sim.workload(12 * nodes, &codes, "D").into_iter().skip(k).step_by(nodes).collect();
    let at_ms = rng.random_range(1_000..5_000);
    sim.schedule_at(at_ms, Event::FailWrites { node: k, n: rng.random_range(1..=4) });
    for (j, envelopes) in batches.into_iter().enumerate() {
        sim.schedule_at(at_ms + 300 * j as u64, Event::Submit { node: k, envelopes });
    }
    let others = sim.workload(sim.scenario.certificates, &codes, "E");
    sim.submit_workload(others, &codes, 0, 1_000);
    sim.schedule_at(sim.scenario.faults_end_ms, Event::FaultsEnd);
    sim.run_until(sim.start + sim.scenario.faults_end_ms, &|_| false);
    if sim.nodes[k].disk.failed_writes() == 0 {
        sim.violation("disk failure: no write failed".into());
    }
    sim.expect_liveness(2, 600_000);
    sim.report("disk-failure")
}

/// The longest the withholding scenario allows from a suspension act being submitted, with
/// every approval, until every node has it committed: the bound of docs/consensus.md
/// ("Withheld precommit") at the simulator's timers — the height under way ends by the round
/// after the one that certified its block (at most two rounds at the 30 s cap), and the act
/// commits at the next height, in its first round or, if the withholding voter leads that
/// round, in its second (2 s + 3 s) — with room for the simulated network.
pub const WITHHOLD_BOUND_MS: u64 = 90_000;

/// The withholding scenario's kinds, `withhold-<point>` and `withhold-<point>-pending`.
pub const WITHHOLD_KINDS: [&str; 12] = [
    "withhold-proposal",
    "withhold-prevote",
    "withhold-prevote-certificate",
    "withhold-precommit",
    "withhold-commit-certificate",
    "withhold-new-round",
    "withhold-proposal-pending",
    "withhold-prevote-pending",
    "withhold-prevote-certificate-pending",
    "withhold-precommit-pending",
    "withhold-commit-certificate-pending",
    "withhold-new-round-pending",
];

/// A participant X withholds one step for good (`point`: its proposals, prevotes, prevote
/// certificates as leader, precommits, commit certificates as leader, or NewRound reports) under
/// trade, and the others suspend it. With `pending`, the act suspending X is pending (every
/// other participant's approval gathered and the act submitted) when X starts withholding;
/// otherwise X withholds first, the chain slows or stops, and the act follows 20 s later. In
/// every case: agreement, no honest node fails, the act commits within [`WITHHOLD_BOUND_MS`] of
/// its submission on every other node, and the chain resumes without X.
pub fn run_withhold(seed: u64, nodes: usize, point: WithholdPoint, pending: bool) -> Report {
    let mut sc = Scenario::calm(seed, nodes);
    let mut rng = StdRng::seed_from_u64(seed ^ 0x7769_7468_6864);
    let x = rng.random_range(0..nodes);
    sc.byzantine = vec![(x, Behaviour::WithholdAt(point))];
    sc.net.loss_permille = 5;
    let mut sim = Sim::new(sc);
    sim.faults_on = false;
    let codes = participant_codes(nodes);
    let xid = sim.nodes[x].id;
    let xcode = xid.to_string();
    let others: Vec<String> = codes.iter().filter(|c| **c != xcode).cloned().collect();
    let kind = WITHHOLD_KINDS
        .into_iter()
        .find(|k| *k == format!("withhold-{}{}", point.name(), if pending { "-pending" } else { "" }))
        .unwrap_or("withhold");
    // Trade between the others before and during (with X it would be refused once X is
    // suspended, rightly).
    let batches = sim.workload(sim.scenario.certificates, &others, "W");
    sim.submit_workload(batches, &others, sim.now - sim.start, 1_500);
    sim.run_until(sim.now + rng.random_range(3_000..=8_000), &|_| false);
    let proposer = others[0].clone();
    let suspend = act("KP/2026/SUSPEND-W", GovernanceAction::Suspend { participant: xid });
    if !pending {
        sim.byzantine_forced.insert(x);
        sim.run_until(sim.now + 20_000, &|_| false);
    }
    if !govern(&mut sim, &proposer, &others, &suspend, 240_000) {
        return sim.report(kind);
    }
    sim.byzantine_forced.insert(x);
    let submitted = sim.now;
    // Committed on every other node (X, withholding its reports, may not follow).
    let suspended = move |s: &Sim| {
        (0..s.nodes.len())
            .filter(|i| *i != x)
            .all(|i| s.nodes[i].core.as_ref().is_some_and(|c| !c.voters().iter().any(|(id, _)| *id == xid)))
    };
    if !sim.run_until(sim.now + WITHHOLD_BOUND_MS, &suspended) {
        let state: Vec<String> = sim.nodes.iter().map(Node::describe).collect();
        sim.violation(format!(
            "withhold: {xid} (withholding its {}) was not suspended within {WITHHOLD_BOUND_MS} ms: {}",
            point.name(),
            state.join("; ")
        ));
        return sim.report(kind);
    }
    sim.stats.suspension_ms = sim.now - submitted;
    // The others go on without X (which, still withholding, need not follow: a node that never
    // speaks is never told it is behind).
    let lowest_other = move |s: &Sim| (0..s.nodes.len()).filter(|i| *i != x).map(|i| s.nodes[i].height()).min();
    let before = lowest_other(&sim).unwrap_or(0);
    let batches = sim.workload(3, &others, "V");
    sim.submit_workload(batches, &others, sim.now - sim.start, 0);
    let resumed = move |s: &Sim| {
        lowest_other(s).is_some_and(|h| h >= before + 2)
            && (0..s.nodes.len()).filter(|i| *i != x).all(|i| s.nodes[i].up() && s.nodes[i].pool() == 0)
    };
    if !sim.run_until(sim.now + 240_000, &resumed) {
        sim.violation(format!("withhold: the chain did not continue without {xid} ({:?})", sim.heights()));
    }
    sim.report(kind)
}

/// How long a clock scenario runs (virtual time).
pub const CLOCK_RUN_MS: u64 = 20 * 60_000;

/// The clock faults of [`run_clock`].
pub const CLOCK_CASES: [&str; 5] = ["none", "minute", "hour", "drift", "jump"];

/// One participant's clock is wrong — a minute or an hour ahead or behind (`minute`, `hour`), a
/// third of the nodes drift apart by ten minutes an hour (`drift`), or the next proposer's clock
/// jumps by an hour mid-run (`jump`) — or no clock is (`none`, the baseline) — for twenty
/// minutes of virtual time under trade. Consensus time
/// comes from the voters' signed clock readings, so the network must keep committing at the
/// pace of a network without the fault, every block time must lie where the design puts it (no
/// earlier than the first commit of the block two before it, no later than the first commit of
/// its parent, give or take the correct clocks' skew), and every node must measure its own offset
/// (what its operator is told) to within a second.
pub fn run_clock(seed: u64, nodes: usize, case: &str) -> Report {
    let mut sc = Scenario::calm(seed, nodes);
    sc.faults_end_ms = CLOCK_RUN_MS;
    let correct_skew = i64::try_from(sc.clock_skew_ms).unwrap_or(0);
    let mut rng = StdRng::seed_from_u64(seed ^ 0x636c_6f63_6b00);
    let sign = if rng.random_bool(0.5) { 1 } else { -1 };
    let mut sim = Sim::new(sc);
    let mut order: Vec<usize> = (0..nodes).collect();
    order.shuffle(&mut rng);
    let faulty: Vec<usize> = match case {
        "none" => vec![],
        "minute" | "hour" => {
            let by = if case == "minute" { 60_000 } else { 3_600_000 };
            sim.nodes[order[0]].skew_ms = sign * by;
            vec![order[0]]
        }
        "drift" => {
            let third = (nodes / 3).max(1);
            for (k, &i) in order.iter().take(third).enumerate() {
                sim.nodes[i].drift_ms_per_hour = if k % 2 == 0 { sign * 600_000 } else { -sign * 600_000 };
            }
            order[..third].to_vec()
        }
        "jump" => {
            // The leader of the next height's first round.
            let i = sim.nodes[0].core.as_ref().map_or(0, |c| {
                let voters = c.voters();
                kp_consensus::leader_of(voters, c.height() + 1, 0)
                    .and_then(|id| sim.index.get(&id).copied())
                    .unwrap_or(0)
            });
            sim.nodes[i].jump = Some((rng.random_range(5_000..=30_000), sign * 3_600_000));
            vec![i]
        }
        other => {
            sim.violation(format!("clock: no case {other:?} (one of {CLOCK_CASES:?})"));
            return sim.report("clock");
        }
    };
    let codes = participant_codes(nodes);
    let batches = sim.workload(sim.scenario.certificates, &codes, "K");
    sim.submit_workload(batches, &codes, 0, 120_000);
    sim.schedule_at(sim.scenario.faults_end_ms, Event::FaultsEnd);
    sim.run_until(sim.start + sim.scenario.faults_end_ms, &|_| false);
    // Block times: increasing, and where the design puts them.
    let tolerance = u64::try_from(correct_skew).unwrap_or(0) + 50;
    let mut previous: Option<(u64, u64, Timestamp)> = None;
    let mut two_before = sim.start;
    let commits: Vec<(u64, (u64, Timestamp))> = sim.first_commit.iter().map(|(h, c)| (*h, *c)).collect();
    for (h, (committed_at, time)) in commits {
        if let Some((ph, parent_at, parent_time)) = previous {
            if time <= parent_time {
                sim.violation(format!("clock: block {h}'s time {time} is not after block {ph}'s {parent_time}"));
            }
            let (low, high) = (two_before.saturating_sub(tolerance), parent_at + tolerance);
            if ph + 1 == h && !(low..=high).contains(&time.0) {
                sim.violation(format!(
                    "clock: block {h}'s time {time} is outside [{}, {}] (the first commits of blocks {} and {ph}, \
                     ± {tolerance} ms)",
                    Timestamp(low),
                    Timestamp(high),
                    h.saturating_sub(2)
                ));
            }
            two_before = parent_at;
        }
        previous = Some((h, committed_at, time));
    }
    // Every node knows its offset, the faulty ones theirs.
    for i in 0..nodes {
        let skew = sim.skew(i);
        let id = sim.nodes[i].id;
        match sim.nodes[i].core.as_ref().and_then(Core::clock_offset) {
            Some(o) if (o.offset_ms - skew).unsigned_abs() <= 1_000 + tolerance => {
                let warned = o.off_since.is_some();
                let threshold = kp_core::clock::DEFAULT_WARNING_MS;
                let should = skew.unsigned_abs() > threshold + tolerance;
                let may = skew.unsigned_abs() + tolerance > threshold;
                if (should && !warned) || (warned && !(may && faulty.contains(&i))) {
                    sim.violation(format!("clock: {id} is {skew} ms off, but its warning state is {warned}"));
                }
            }
            other => sim.violation(format!("clock: {id} is {skew} ms off, but measures {other:?}")),
        }
    }
    sim.expect_liveness(3, 600_000);
    let kind = ["clock-none", "clock-minute", "clock-hour", "clock-drift", "clock-jump"]
        .into_iter()
        .find(|k| k.ends_with(case))
        .unwrap_or("clock");
    sim.report(kind)
}

/// The run of one kind of scenario (as `scripts/sim.sh --kind` names them).
pub fn run_kind(kind: &str, seed: u64, nodes: usize) -> Option<Report> {
    Some(match kind {
        "faults" => run(Scenario::random(seed, nodes)),
        "governance" => run_governance(seed, nodes),
        "offline" => run_offline(seed, nodes, OFFLINE_MS),
        "flood" => run_flood(seed, nodes),
        "pool-flood" => run_pool_flood(seed, nodes),
        "disk-failure" => run_disk_failure(seed, nodes),
        k if k.strip_prefix("clock-").is_some_and(|c| CLOCK_CASES.contains(&c)) => {
            run_clock(seed, nodes, &k["clock-".len()..])
        }
        k if WITHHOLD_KINDS.contains(&k) => {
            let pending = k.ends_with("-pending");
            let name = k.trim_start_matches("withhold-").trim_end_matches("-pending");
            let point = WithholdPoint::ALL.into_iter().find(|p| p.name() == name)?;
            run_withhold(seed, nodes, point, pending)
        }
        _ => return None,
    })
}

/// The run of `seed` in the CI set and the soak: a random fault mix, except every tenth seed
/// (the governance scenario) and, among the others, every 25th (disk failure) and 50th (the
/// pool flood, on up to 7 nodes). The long offline and flood runs are run by seed on their own
/// (`crates/kp-sim/tests/ci.rs`).
pub fn run_seed(seed: u64, nodes: usize) -> Report {
    match seed % 50 {
        9 | 19 | 29 | 39 | 49 => run_governance(seed, nodes),
        24 => run_disk_failure(seed, nodes),
        44 if nodes <= 7 => run_pool_flood(seed, nodes),
        _ => run(Scenario::random(seed, nodes)),
    }
}

/// The kinds [`run_kind`] knows.
pub const KINDS: [&str; 11] = [
    "faults",
    "governance",
    "offline",
    "flood",
    "pool-flood",
    "disk-failure",
    "clock-none",
    "clock-minute",
    "clock-hour",
    "clock-drift",
    "clock-jump",
];

/// How long the offline scenario keeps its voter away: 36 hours.
pub const OFFLINE_MS: u64 = 36 * 3_600_000;

/// Figures of a fault-free run for the benchmark.
#[derive(Debug, Clone)]
pub struct BenchFigures {
    pub nodes: usize,
    pub blocks: u64,
    pub events: u64,
    pub cpu_ms_per_block: f64,
    pub messages_per_block: f64,
    pub bytes_per_block: f64,
    pub virtual_ms_per_block: f64,
}

/// A fault-free network committing `blocks` blocks of up to `events_per_block` custody events:
/// CPU time of every node's core (submission, consensus, re-execution, certificate checks,
/// storage in memory), and messages and bytes per committed block.
#[allow(clippy::float_arithmetic, clippy::cast_precision_loss)]
pub fn bench(seed: u64, nodes: usize, blocks: u64, events_per_block: usize) -> BenchFigures {
    let mut sc = Scenario::calm(seed, nodes);
    sc.clock_skew_ms = 0;
    sc.max_block_events = events_per_block.max(1);
    let mut sim = Sim::new(sc);
    sim.faults_on = false;
    let codes = participant_codes(nodes);
    let certs = (events_per_block * blocks as usize).div_ceil(3);
    if events_per_block > 0 {
        let batches = sim.workload(certs, &codes, "X");
        sim.submit_workload(batches, &codes, 0, 0);
    }
    // Let the first block settle, then measure.
    sim.run_until(sim.now + 600_000, &|s| s.heights().0 >= 1);
    let (h0, s0, t0) = (sim.heights().0, sim.stats.clone(), sim.now);
    sim.run_until(sim.now + 3_600_000, &|s| s.heights().0 >= h0 + blocks);
    let h1 = sim.heights().0;
    let committed = (h1 - h0).max(1);
    let events = sim.nodes[0].core.as_ref().map_or(0, |c| c.store().head().events);
    let per = |x: f64| x / committed as f64;
    BenchFigures {
        nodes,
        blocks: h1 - h0,
        events,
        cpu_ms_per_block: per((sim.stats.cpu - s0.cpu).as_secs_f64() * 1e3),
        messages_per_block: per((sim.stats.consensus_messages - s0.consensus_messages) as f64),
        bytes_per_block: per((sim.stats.consensus_bytes - s0.consensus_bytes) as f64),
        virtual_ms_per_block: per((sim.now - t0) as f64),
    }
}
